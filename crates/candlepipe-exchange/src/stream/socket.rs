//! One WebSocket connection to an exchange (rustls; `ws://` for the simulator). Pings are
//! answered by tungstenite itself, with their payload, on the next read or write.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use tokio_tungstenite::tungstenite::Message;

use crate::FetchError;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a connection to `url` within `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<Socket, FetchError> {
    match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(e)) => Err(FetchError::Connect(format!("{url}: {e}"))),
        Err(_) => Err(FetchError::Timeout),
    }
}
