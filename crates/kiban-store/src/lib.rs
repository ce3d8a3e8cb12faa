//! kiban-store (in progress).
