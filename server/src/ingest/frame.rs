//! Reading length-prefixed frames off a QUIC stream.

use opensports_proto::codec::{self, Codec, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Frame(FrameError),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("a frame was started and not finished within {0:?}")]
    Timeout(std::time::Duration),
    #[error("stream read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame into `buf` (the body, without the codec byte). `Ok(None)` is a clean end
/// of stream at a frame boundary. Waiting for a frame to start has no limit; once its first
/// byte is in, the rest must come within `timeout`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
    buf: &mut Vec<u8>,
    timeout: std::time::Duration,
) -> Result<Option<Codec>, ReadError> {
    let mut header = [0u8; codec::LEN_BYTES];
    let n = r.read(&mut header).await?;
    if n == 0 {
        return Ok(None);
    }
    match tokio::time::timeout(timeout, read_rest(r, max, buf, header, n)).await {
        Ok(result) => result.map(Some),
        Err(_) => Err(ReadError::Timeout(timeout)),
    }
}

/// The rest of a frame whose first `filled` header bytes are in.
async fn read_rest<R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
    buf: &mut Vec<u8>,
    mut header: [u8; codec::LEN_BYTES],
    mut filled: usize,
) -> Result<Codec, ReadError> {
    while filled < header.len() {
        let n = r.read(&mut header[filled..]).await?;
        if n == 0 {
            return Err(ReadError::Truncated);
        }
        filled += n;
    }
    let len = codec::frame_len(header, max).map_err(ReadError::Frame)?;
    let codec_byte = read_exact_or_truncated(r, 1, buf).await?;
    let codec = Codec::from_byte(codec_byte[0]).map_err(ReadError::Frame)?;
    read_exact_or_truncated(r, len - 1, buf).await?;
    Ok(codec)
}

async fn read_exact_or_truncated<'b, R: AsyncRead + Unpin>(
    r: &mut R,
    n: usize,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8], ReadError> {
    buf.clear();
    buf.resize(n, 0);
    match r.read_exact(buf).await {
        Ok(_) => Ok(&buf[..]),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ReadError::Truncated),
        Err(e) => Err(ReadError::Io(e)),
    }
}

impl ReadError {
    /// The QUIC stream code and reject reason for a framing error; `None` for I/O errors
    /// (the connection is gone, nobody to tell).
    pub fn code(&self) -> Option<(u32, &'static str)> {
        use opensports_proto::error_code::{quic, reason};
        match self {
            ReadError::Frame(FrameError::TooLarge { .. }) => {
                Some((quic::FRAME_TOO_LARGE, reason::FRAME_TOO_LARGE))
            }
            ReadError::Frame(FrameError::Empty) | ReadError::Truncated => {
                Some((quic::FRAME_MALFORMED, reason::FRAME_MALFORMED))
            }
            ReadError::Frame(FrameError::UnknownCodec(_)) => {
                Some((quic::UNKNOWN_CODEC, reason::UNKNOWN_CODEC))
            }
            ReadError::Timeout(_) => Some((quic::FRAME_TIMEOUT, reason::FRAME_TIMEOUT)),
            ReadError::Io(_) => None,
        }
    }
}
