//! kiban-metadata (in progress).
