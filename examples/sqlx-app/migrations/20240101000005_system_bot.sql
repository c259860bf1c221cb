INSERT INTO accounts (handle, kind) VALUES ('system', 'bot');
