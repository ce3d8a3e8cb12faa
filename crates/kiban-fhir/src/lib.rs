//! kiban-fhir (in progress).
