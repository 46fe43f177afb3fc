//! Binding the gateway's listening socket, alone or sharing the port (`SO_REUSEPORT`) with
//! `cluster up`, which holds a process's port while the process is replaced.

use std::net::SocketAddr;

/// Connections waiting to be accepted.
const BACKLOG: u32 = 1024;

/// A listener on `addr`; with `reuse_port`, other sockets that set it may bind the port too
/// (the kernel spreads new connections over them).
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
