//! Logging of metadata errors without data values.

use kiban_metadata::MetadataError;

/// Logs a failed read of the metadata store. Only the kind of failure is logged: ids and stored
/// values stay out of the log (the database driver's own message names tables and columns).
pub(crate) fn log_metadata_error(context: &'static str, err: &MetadataError) {
    match err {
        MetadataError::NotFound { what, .. } => {
            tracing::debug!(context, what, "requested row not found");
        }
        MetadataError::Invalid { what, .. } => {
            tracing::error!(context, what, "metadata database holds an invalid value");
        }
        MetadataError::UnsupportedUrl(_) => {
            tracing::error!(context, "metadata database URL is not supported");
        }
        other => {
            tracing::error!(context, error = %other, "metadata database read failed");
        }
    }
}
