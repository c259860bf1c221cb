INSERT INTO users (name) VALUES ('andrewbrown'), ('bayko');
INSERT INTO posts (user_id, title, state)
SELECT id, 'hello from ' || name, 'published' FROM users WHERE name = 'andrewbrown';
