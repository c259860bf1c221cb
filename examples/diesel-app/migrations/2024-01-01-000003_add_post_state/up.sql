CREATE TYPE post_state AS ENUM ('draft');
ALTER TABLE posts ADD COLUMN state post_state NOT NULL DEFAULT 'draft';
