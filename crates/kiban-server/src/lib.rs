//! kiban-server (in progress).
