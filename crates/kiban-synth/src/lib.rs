//! kiban-synth (in progress).
