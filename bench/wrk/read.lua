-- read by id: GET /fhir/Patient/bench-<n> for a random seeded patient.
local patients = tonumber(os.getenv("BENCH_PATIENTS") or "1000")
request = function()
  return wrk.format("GET", "/fhir/Patient/bench-" .. math.random(patients))
end
