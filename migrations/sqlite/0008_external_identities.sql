-- Accounts that sign in through the clinic's own OpenID Connect provider are found by the
-- provider's issuer and subject ("issuer|subject").
ALTER TABLE auth_users ADD COLUMN external_subject TEXT;
CREATE UNIQUE INDEX auth_users_by_external_subject ON auth_users (external_subject);
