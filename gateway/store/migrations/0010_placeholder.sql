-- placeholder; replaced by the privacy branch at merge
-- (one no-op statement: a file of comments only gives asyncpg no command status)
SELECT 1;
