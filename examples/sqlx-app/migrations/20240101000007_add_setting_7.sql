ALTER TABLE accounts ADD COLUMN setting_7 integer NOT NULL DEFAULT 7;
