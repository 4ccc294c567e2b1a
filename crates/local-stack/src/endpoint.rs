//! Where the local stack listens, and SDK clients that talk to it.

use anyhow::{Context, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecs::config::Credentials;

/// Region every local resource lives in.
pub const REGION: &str = "us-east-1";
/// The account moto answers as.
pub const ACCOUNT_ID: &str = "123456789012";
/// The gateway's port when `BG_GATEWAY_PORT` is not set.
pub const DEFAULT_GATEWAY_PORT: u16 = 5100;
/// Environment variable naming the gateway's port.
pub const GATEWAY_PORT_VAR: &str = "BG_GATEWAY_PORT";

/// The one URL every client of the local stack uses: the gateway (or, while developing the
/// fixtures, a bare moto server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
}

impl Endpoint {
    /// The gateway on `127.0.0.1:$BG_GATEWAY_PORT` (default 5100).
    ///
    /// # Errors
    /// When `BG_GATEWAY_PORT` is set but is not a port number.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var(GATEWAY_PORT_VAR) {
            Ok(v) if !v.trim().is_empty() => {
                let port: u16 = v.trim().parse().with_context(|| {
                    format!("{GATEWAY_PORT_VAR}={v:?} is not a port number (1-65535)")
                })?;
                if port == 0 {
                    bail!("{GATEWAY_PORT_VAR}=0 is not a port number (1-65535)");
                }
                Ok(Self::local(port))
            }
            _ => Ok(Self::local(DEFAULT_GATEWAY_PORT)),
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn local(port: u16) -> Self {
        Self::at(format!("http://127.0.0.1:{port}"))
    }

    /// Any base URL (a trailing `/` is dropped).
    pub fn at(url: impl Into<String>) -> Self {
        let mut url = url.into();
        while url.ends_with('/') {
            url.pop();
        }
        Endpoint { url }
    }

    /// The base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// SDK configuration for the local stack: this endpoint, `us-east-1` and static fake
    /// credentials, so nothing of the user's `~/.aws` or environment credentials is used.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "local-stack"))
            .load()
            .await
    }

    /// Every SDK client the fixtures use, configured for this endpoint.
    pub async fn clients(&self) -> Clients {
        Clients::new(&self.sdk_config().await)
    }
}

/// The SDK clients of one endpoint. Cloning is cheap (the clients share their connection
/// pool).
#[derive(Debug, Clone)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Clients {
    /// Clients built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Clients {
            ecs: aws_sdk_ecs::Client::new(config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            ecr: aws_sdk_ecr::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_is_dropped() {
        assert_eq!(
            Endpoint::at("http://127.0.0.1:5100/").url(),
            "http://127.0.0.1:5100"
        );
        assert_eq!(Endpoint::local(5391).url(), "http://127.0.0.1:5391");
    }
}
