CREATE TABLE posts (
    id SERIAL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT now()
);
SELECT diesel_manage_updated_at('posts');
