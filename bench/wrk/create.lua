-- create: POST /fhir/Patient with a realistic patient (validated like any write; the server
-- assigns each one an MRN from the clinic's sequence, as for a new registration).
wrk.method = "POST"
wrk.path = "/fhir/Patient"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Prefer"] = "return=minimal"
wrk.body = [[{"resourceType":"Patient","active":true,"name":[{"use":"official","family":"Doe","given":["Jane","Q"]}],"telecom":[{"system":"phone","value":"+15555550100","use":"mobile"}],"gender":"female","birthDate":"1984-02-29","address":[{"line":["1 Main St"],"city":"Springfield","state":"IL","postalCode":"62701"}],"contact":[{"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0131","code":"C"}]}],"name":{"family":"Doe","given":["Ann"]}}]}]]
