//! Ports and host, read once from the environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::Error;

/// Where the gateway listens and where it finds moto and the Lambda host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: IpAddr,
    pub gateway_port: u16,
    pub moto_port: u16,
    pub lambda_port: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5100, 5101, 5102)
    }
}

impl Config {
    pub fn new(host: IpAddr, gateway_port: u16, moto_port: u16, lambda_port: u16) -> Self {
        Self {
            host,
            gateway_port,
            moto_port,
            lambda_port,
        }
    }

    /// Reads `BG_HOST`, `BG_GATEWAY_PORT`, `BG_MOTO_PORT` and `BG_LAMBDA_PORT`; unset ones
    /// keep their defaults (127.0.0.1, 5100, 5101, 5102).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when a value is not a port or `BG_HOST` is not a
    /// loopback address (the local stack never listens beyond this machine).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let defaults = Self::default();
        let host = match lookup("BG_HOST") {
            None => defaults.host,
            Some(value) => {
                let host: IpAddr = value.trim().parse().map_err(|_| Error::Config {
                    var: "BG_HOST",
                    value: value.clone(),
                    reason: "not an IP address".to_owned(),
                })?;
                if !host.is_loopback() {
                    return Err(Error::Config {
                        var: "BG_HOST",
                        value,
                        reason: "the local stack listens on loopback only; use 127.0.0.1"
                            .to_owned(),
                    });
                }
                host
            }
        };
        let port = |var: &'static str, default: u16| -> Result<u16, Error> {
            match lookup(var) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u16>() {
                    Ok(port) if port != 0 => Ok(port),
                    _ => Err(Error::Config {
                        var,
                        value,
                        reason: "not a port number (1-65535)".to_owned(),
                    }),
                },
            }
        };
        Ok(Self {
            host,
            gateway_port: port("BG_GATEWAY_PORT", defaults.gateway_port)?,
            moto_port: port("BG_MOTO_PORT", defaults.moto_port)?,
            lambda_port: port("BG_LAMBDA_PORT", defaults.lambda_port)?,
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.gateway_port)
    }

    pub fn moto_url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.host, self.moto_port))
    }

    pub fn lambda_url(&self) -> String {
        format!("http://{}", SocketAddr::new(self.host, self.lambda_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(vars: &[(&str, &str)]) -> Result<Config, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_to_the_documented_ports_on_loopback() {
        let config = config_from(&[]).expect("defaults are valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.listen_addr().to_string(), "127.0.0.1:5100");
        assert_eq!(config.moto_url(), "http://127.0.0.1:5101");
        assert_eq!(config.lambda_url(), "http://127.0.0.1:5102");
    }

    #[test]
    fn reads_every_override() {
        let config = config_from(&[
            ("BG_GATEWAY_PORT", "6100"),
            ("BG_MOTO_PORT", "6101"),
            ("BG_LAMBDA_PORT", "6102"),
            ("BG_HOST", "::1"),
        ])
        .expect("overrides are valid");
        assert_eq!(config.gateway_port, 6100);
        assert_eq!(config.moto_url(), "http://[::1]:6101");
        assert_eq!(config.lambda_port, 6102);
    }

    #[test]
    fn names_the_variable_that_is_not_a_port() {
        let err = config_from(&[("BG_MOTO_PORT", "moto")]).expect_err("not a port");
        assert!(err.to_string().contains("BG_MOTO_PORT"), "{err}");
    }

    #[test]
    fn refuses_to_listen_beyond_loopback() {
        let err = config_from(&[("BG_HOST", "0.0.0.0")]).expect_err("not loopback");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
