//! Errors of the deployment crate: configuration problems, pipeline errors, and what the Lambda
//! handler reports to the runtime (with whether a retry can help).

use auditq_ingest::IngestError;

/// An error that stops the handler or the service from starting or from finishing a batch.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The configuration is invalid.
    #[error("configuration: {field}: {message}")]
    Config {
        /// The field (or file) at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The rules do not compile.
    #[error(transparent)]
    Rules(#[from] auditq_rules::RuleErrors),
    /// The pipeline failed (nothing of the batch is committed).
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The HTTP listener or a signal handler could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a Lambda invocation reports when it fails. `retryable` says whether the same event may
/// succeed later (a throttled or unreachable service, a lake commit conflict) or never will
/// (an event auditq does not understand); the runtime reports it as the error type
/// `auditq.Retryable` or `auditq.Permanent`, so alarms and on-failure destinations can tell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if *.retryable { "retryable" } else { "permanent" })]
pub struct HandlerError {
    /// Whether retrying the same event can help.
    pub retryable: bool,
    /// What happened, with where.
    pub message: String,
}

impl HandlerError {
    /// An event that will never be processed as sent.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

impl From<IngestError> for HandlerError {
    fn from(error: IngestError) -> Self {
        // Rows that do not convert to Arrow are a bug, not a passing condition; everything
        // else (an AWS call, the lake, the outbox) can pass.
        let retryable = !matches!(error, IngestError::Arrow { .. });
        Self {
            retryable,
            message: error.to_string(),
        }
    }
}

impl From<DeployError> for HandlerError {
    fn from(error: DeployError) -> Self {
        match error {
            DeployError::Ingest(e) => e.into(),
            other => HandlerError::permanent(other.to_string()),
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: if error.retryable {
                "auditq.Retryable"
            } else {
                "auditq.Permanent"
            }
            .to_string(),
            error_message: error.message,
        }
    }
}
