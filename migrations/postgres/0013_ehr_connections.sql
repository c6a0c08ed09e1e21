-- How Kiln signs in to another EHR's FHIR API (issue: EHR linking). The remote itself is a FHIR
-- Endpoint resource of the clinic; this row holds what must not be a resource: the credential,
-- sealed under the data key ring (a client secret, or the private key of a backend-services
-- client), never in clear.
CREATE TABLE ehr_connections (
    tenant         TEXT NOT NULL,
    endpoint_id    TEXT NOT NULL,
    auth           TEXT NOT NULL,   -- backend-services | client-secret | none
    client_id      TEXT,
    secret_sealed  TEXT,
    algorithm      TEXT,            -- RS384 | ES384 (backend-services)
    key_id         TEXT,
    scope          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant, endpoint_id)
);
