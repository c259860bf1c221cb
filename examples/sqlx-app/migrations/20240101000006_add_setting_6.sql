ALTER TABLE accounts ADD COLUMN setting_6 integer NOT NULL DEFAULT 6;
