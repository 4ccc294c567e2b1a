//! The [`SecretStore`] port over `aws-sdk-secretsmanager`.

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;

use super::{SecretRef, SecretStore, SecretToken};
use crate::aws::service_error_is;
use crate::error::{Error, Result};

/// The stage label of a secret's current version.
const AWSCURRENT: &str = "AWSCURRENT";

/// AWS Secrets Manager through the SDK.
#[derive(Debug, Clone)]
pub struct SdkSecretStore {
    client: Client,
}

impl SdkSecretStore {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        SdkSecretStore { client }
    }

    /// An adapter with a client from `conf` (see [`crate::aws::sdk_config`]).
    pub fn from_conf(conf: &SdkConfig) -> Self {
        Self::new(Client::new(conf))
    }

    /// The SDK client, for calls the port does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl SecretStore for SdkSecretStore {
    /// `GetSecretValue` of the `AWSCURRENT` version; with a key, the secret string is a JSON
    /// object and the value is that key's string.
    ///
    /// # Errors
    /// [`Error::Config`] when the secret (or its current version) does not exist, is binary,
    /// is not a JSON object with the key, or the value is empty — naming the secret and key,
    /// never the value; otherwise [`Error::aws`] of `GetSecretValue` (access denied, KMS
    /// decryption, throttling).
    async fn current_value(&self, secret: &SecretRef) -> Result<SecretToken> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(&secret.secret_id)
            .version_stage(AWSCURRENT)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if service_error_is(&e, |s| s.is_resource_not_found_exception()) => {
                return Err(Error::Config(format!(
                    "{secret} does not exist or has no {AWSCURRENT} version; check the function's secret setting"
                )));
            }
            Err(e) => return Err(Error::aws("GetSecretValue", secret.secret_id.clone(), e)),
        };
        let Some(text) = out.secret_string() else {
            return Err(Error::Config(format!(
                "{secret} has no SecretString; store the token as a string (binary secrets are not supported)"
            )));
        };
        let value = match &secret.json_key {
            None => text.to_string(),
            Some(key) => {
                // serde's messages can quote the secret's text; none of it is reported.
                let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
                    .map_err(|_| {
                        Error::Config(format!(
                            "{secret} is not a JSON object, but a key was asked for"
                        ))
                    })?;
                match object.get(key) {
                    Some(serde_json::Value::String(v)) => v.clone(),
                    Some(_) => {
                        return Err(Error::Config(format!(
                            "{secret}: the value is not a string"
                        )));
                    }
                    None => {
                        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
                        keys.sort_unstable();
                        return Err(Error::Config(format!(
                            "{secret} has no such key; it has {}",
                            if keys.is_empty() {
                                "none".to_string()
                            } else {
                                keys.join(", ")
                            }
                        )));
                    }
                }
            }
        };
        SecretToken::new(value).map_err(|e| match e {
            Error::Config(why) => Error::Config(format!("{secret}: {why}")),
            other => other,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_sdk_secretsmanager::operation::get_secret_value::{
        GetSecretValueError, GetSecretValueOutput,
    };
    use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    const SECRET: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:dynatrace-deploy-AbCdEf";

    fn value() -> String {
        format!("dt0c01.{}.{}", "P".repeat(24), "S".repeat(64))
    }

    fn plain() -> SecretRef {
        SecretRef {
            secret_id: SECRET.into(),
            json_key: None,
        }
    }

    fn keyed(key: &str) -> SecretRef {
        SecretRef {
            secret_id: SECRET.into(),
            json_key: Some(key.into()),
        }
    }

    #[tokio::test]
    async fn reads_the_current_version_of_a_plain_secret() {
        let rule = mock!(Client::get_secret_value)
            .match_requests(|i| {
                i.secret_id() == Some(SECRET) && i.version_stage() == Some("AWSCURRENT")
            })
            .then_output(|| {
                GetSecretValueOutput::builder()
                    .secret_string(format!("{}\n", value()))
                    .build()
            });
        let store = SdkSecretStore::new(mock_client!(aws_sdk_secretsmanager, [&rule]));

        let token = store.current_value(&plain()).await.unwrap();
        assert_eq!(token.expose_secret(), value());
    }

    #[tokio::test]
    async fn reads_one_key_of_a_json_secret() {
        let rule = mock!(Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(serde_json::json!({"apiToken": value(), "other": "x"}).to_string())
                .build()
        });
        let store = SdkSecretStore::new(mock_client!(aws_sdk_secretsmanager, [&rule]));

        let token = store.current_value(&keyed("apiToken")).await.unwrap();
        assert_eq!(
            token.id(),
            Some(format!("dt0c01.{}", "P".repeat(24)).as_str())
        );
    }

    #[tokio::test]
    async fn a_missing_key_or_a_plain_secret_asked_for_a_key_names_the_keys_not_the_values() {
        let rule = mock!(Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(serde_json::json!({"apiToken": value()}).to_string())
                .build()
        });
        let plain_rule = mock!(Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(value())
                .build()
        });
        let store = SdkSecretStore::new(mock_client!(
            aws_sdk_secretsmanager,
            aws_smithy_mocks::RuleMode::Sequential,
            [&rule, &plain_rule]
        ));

        let err = store.current_value(&keyed("token")).await.unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
        assert!(err.to_string().contains("apiToken"), "{err}");
        assert!(!err.to_string().contains(&"S".repeat(64)), "{err}");
        let err = store.current_value(&keyed("token")).await.unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        assert!(!err.to_string().contains(&"S".repeat(64)), "{err}");
    }

    #[tokio::test]
    async fn a_missing_secret_is_a_config_error_naming_it() {
        let rule = mock!(Client::get_secret_value).then_error(|| {
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            )
        });
        let store = SdkSecretStore::new(mock_client!(aws_sdk_secretsmanager, [&rule]));

        let err = store.current_value(&plain()).await.unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
        assert!(err.to_string().contains(SECRET), "{err}");
    }

    #[tokio::test]
    async fn an_empty_secret_is_a_config_error() {
        let rule = mock!(Client::get_secret_value)
            .then_output(|| GetSecretValueOutput::builder().secret_string(" ").build());
        let store = SdkSecretStore::new(mock_client!(aws_sdk_secretsmanager, [&rule]));

        let err = store.current_value(&plain()).await.unwrap_err();
        assert_eq!(err.error_type(), "ConfigError");
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
