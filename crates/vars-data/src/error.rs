//! The crate's error type. Every variant says what is wrong and, where it helps, what to do.

use std::path::PathBuf;

/// Errors of `vars-data`. Library code returns these instead of panicking on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A corruption name that is not one of the 19 known ones.
    #[error("unknown corruption `{name}`; expected one of: {known}")]
    UnknownCorruption { name: String, known: String },

    /// A severity outside 1..=5.
    #[error("severity {0} is out of range: severities are the integers 1 to 5")]
    Severity(i64),

    /// An unknown parameter-set name.
    #[error("unknown parameter set `{0}`; expected `auto`, `imagenet` (224 px, ImageNet-C) or `cifar` (32 px, CIFAR-10-C)")]
    UnknownParamSet(String),

    /// An image whose buffer, size or channel count is unusable.
    #[error("invalid image: {0}")]
    InvalidImage(String),

    /// A corruption parameter outside its valid range (custom parameters).
    #[error("invalid parameter for {corruption}: {message}")]
    InvalidParameter {
        corruption: &'static str,
        message: String,
    },

    /// A file could not be read or written.
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An image file that could not be decoded (not a PNG/JPEG, or corrupt).
    #[error("cannot decode image `{path}`: {message} (supported: PNG and JPEG, 8- or 16-bit, grey or RGB, alpha is dropped)")]
    Decode { path: PathBuf, message: String },

    /// An image that could not be encoded.
    #[error("cannot encode image `{path}`: {message}")]
    Encode { path: PathBuf, message: String },

    /// A file extension the writer does not know.
    #[error("cannot tell the output format of `{0}`: use a .png, .jpg or .jpeg extension")]
    UnknownFormat(PathBuf),

    /// A malformed or unsupported IDX file.
    #[error("IDX file `{path}`: {message}")]
    Idx { path: PathBuf, message: String },

    /// A data set source that make-c cannot use.
    #[error("data set `{path}`: {message}")]
    Dataset { path: PathBuf, message: String },

    /// A data-pipeline request that cannot be served (batch index out of range, inconsistent
    /// sample shapes, a normalisation that does not fit the images, …).
    #[error("data pipeline: {0}")]
    Pipeline(String),

    /// Inconsistent or missing numbers in an mCE computation.
    #[error("mCE: {0}")]
    Mce(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
