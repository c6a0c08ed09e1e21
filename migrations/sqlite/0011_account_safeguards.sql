-- Account safeguards: failed sign-ins in a row and when the account was locked for them, when
-- the password was last set (NULL: when the account was created), and when the user last
-- completed HIPAA training.
ALTER TABLE auth_users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_users ADD COLUMN locked_at BIGINT;
ALTER TABLE auth_users ADD COLUMN password_changed_at BIGINT;
ALTER TABLE auth_users ADD COLUMN training_completed_at BIGINT;
