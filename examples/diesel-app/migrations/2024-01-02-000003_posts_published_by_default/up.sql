ALTER TABLE posts ALTER COLUMN state SET DEFAULT 'published';
