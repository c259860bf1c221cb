ALTER TABLE accounts ADD COLUMN setting_9 integer NOT NULL DEFAULT 9;
