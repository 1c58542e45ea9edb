//! The error type of the ingest crate: each variant says where it happened.

use auditq_model::Table;

/// An error that stops an ingest (bad records do not: they become rejects).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A lake table could not be opened, read or written.
    #[error("lake table {table} at {location}: {source}")]
    Lake {
        /// The table.
        table: Table,
        /// The lake location.
        location: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A commit of a table's Delta log cannot be read: nothing is read from or written to the
    /// table until it is repaired (no answer leaves its rows out silently).
    #[error(
        "lake table {table} at {location}: the Delta log is damaged: {file}: {reason}. Nothing was read or written; restore that file (from a versioned bucket or a backup)"
    )]
    DamagedLog {
        /// The table.
        table: Table,
        /// The lake location.
        location: String,
        /// The commit file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An AWS API call failed.
    #[error("{operation} on {resource}: {message}")]
    Aws {
        /// The API operation.
        operation: String,
        /// What it was called on.
        resource: String,
        /// The SDK's error, with its context.
        message: String,
    },
    /// S3 refused one object (deleted or replaced since it was listed, access denied, archived):
    /// the object is set aside as a reject and tried again next run; the rest goes on.
    #[error("{operation} on {uri} refused ({status}): {message}")]
    ObjectRefused {
        /// The API operation.
        operation: String,
        /// The object.
        uri: String,
        /// The HTTP status.
        status: u16,
        /// The SDK's error, with its context.
        message: String,
    },
    /// An object of auditq's own beside the tables (`_auditq/`: keys, rule state, the outbox)
    /// could not be read or written, or the lake's store could not be made.
    #[error("{location}: {source}")]
    Object {
        /// The object or lake concerned.
        location: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A setting passed to the pipeline is not valid.
    #[error("{setting}: {message}")]
    Config {
        /// The setting.
        setting: String,
        /// What is wrong with it.
        message: String,
    },
    /// Alerts could not be published or kept, or the rule state could not be read or saved.
    #[error("alerting at {location}: {source}")]
    Alerting {
        /// The lake, state object or outbox concerned.
        location: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A commit's digest could not be made, signed or stored, or the signing key could not be
    /// read.
    #[error("digest at {location}: {message}")]
    Digest {
        /// The digest, key or file concerned.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// Rows could not be converted to or from Arrow.
    #[error("table {table}: {source}")]
    Arrow {
        /// The table.
        table: Table,
        /// The cause.
        source: arrow::error::ArrowError,
    },
}

/// The result type of the ingest crate.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;

impl IngestError {
    /// Whether a table's commit lost to another writer's on the same files or version: the
    /// batch can be decided again against what that writer committed.
    pub fn is_commit_conflict(&self) -> bool {
        let IngestError::Lake { source, .. } = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(error) = cause {
            if let Some(transaction) =
                error.downcast_ref::<deltalake::kernel::transaction::TransactionError>()
            {
                use deltalake::kernel::transaction::TransactionError;
                return matches!(
                    transaction,
                    TransactionError::CommitConflict(_)
                        | TransactionError::VersionAlreadyExists(_)
                        | TransactionError::MaxCommitAttempts(_)
                );
            }
            cause = error.source();
        }
        false
    }
}
