//! kiban-ingest (in progress).
