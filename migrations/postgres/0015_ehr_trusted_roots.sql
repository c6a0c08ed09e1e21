-- TLS to a remote EHR is always verified; a remote whose certificate comes from a private CA is
-- trusted through the CA certificates given at its registration (PEM, public data).
ALTER TABLE ehr_connections ADD COLUMN ca_certificates TEXT;
