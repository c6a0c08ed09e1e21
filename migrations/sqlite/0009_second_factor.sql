-- A user's TOTP secret (base32) once they enrolled a second factor, and the last 30-second step
-- a code was accepted for: a code works once.
ALTER TABLE auth_users ADD COLUMN totp_secret TEXT;
ALTER TABLE auth_users ADD COLUMN totp_last_step BIGINT;
