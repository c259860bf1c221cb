ALTER TABLE accounts ADD COLUMN setting_8 integer NOT NULL DEFAULT 8;
