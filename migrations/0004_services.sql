-- Service safety (issue #8): the checks read a service's managed devices by
-- its name as compared by internal/safety (trimmed, case-insensitive), on
-- every schedule request and for GET /api/v1/services/{name}.
CREATE INDEX devices_service_key ON devices (lower(btrim(service)), tier)
    WHERE schedule_name IS NOT NULL AND service IS NOT NULL;
