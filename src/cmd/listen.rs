//! `--listen` values: `IP:PORT`, or `localhost:PORT` for this machine only. Other names are
//! refused rather than looked up: a listen address should not depend on (or ask) a resolver.

use std::net::{Ipv4Addr, SocketAddr};

pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let hint = "give IP:PORT, e.g. 127.0.0.1:5000 for this machine only, 0.0.0.0:5000 for every IPv4 interface, [::]:5000 for IPv6";
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("`{value}` has no port; {hint}"));
    };
    let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a port number (0–65535); {hint}"))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    Err(format!("`{host}` is not an IP address (host names other than localhost are not looked up); {hint}"))
}

#[cfg(test)]
mod tests {
    use super::parse_listen;

    #[test]
    fn addresses_and_localhost_are_accepted() {
        assert_eq!(parse_listen("127.0.0.1:5002").unwrap().to_string(), "127.0.0.1:5002");
        assert_eq!(parse_listen("[::1]:22").unwrap().to_string(), "[::1]:22");
        assert_eq!(parse_listen("localhost:5002").unwrap().to_string(), "127.0.0.1:5002");
        assert_eq!(parse_listen("LocalHost:0").unwrap().to_string(), "127.0.0.1:0");
    }

    #[test]
    fn other_values_say_what_to_give() {
        let err = parse_listen("mirror.acme.internal:443").unwrap_err();
        assert!(err.contains("`mirror.acme.internal` is not an IP address") && err.contains("0.0.0.0:5000"), "{err}");
        assert!(parse_listen("localhost").unwrap_err().contains("has no port"));
        assert!(parse_listen("localhost:http").unwrap_err().contains("`http` is not a port number"));
    }
}
