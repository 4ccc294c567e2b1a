//! The [`SecretVersions`] port over `aws-sdk-secretsmanager` (the same adapter as the
//! Dynatrace token's [`crate::dynatrace::SdkSecretStore`]).

use super::service_error_is;
use crate::dynatrace::SdkSecretStore;
use crate::error::{Error, Result};
use crate::rotation::{SecretDescription, SecretValue, SecretVersions};

impl SecretVersions for SdkSecretStore {
    /// `DescribeSecret`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the secret does not exist; otherwise [`Error::aws`].
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription> {
        let out = self
            .client()
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_resource_not_found_exception()) {
                    Error::InvalidInput(format!("secret {secret_id} not found"))
                } else {
                    Error::aws("DescribeSecret", secret_id, e)
                }
            })?;
        Ok(SecretDescription {
            arn: out.arn().unwrap_or(secret_id).to_string(),
            name: out.name().unwrap_or(secret_id).to_string(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: out
                .version_ids_to_stages()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        })
    }

    /// `GetSecretValue`; a version without a value (Secrets Manager answers
    /// `ResourceNotFoundException`) is `None`.
    ///
    /// # Errors
    /// [`Error::Config`] for a binary secret; otherwise [`Error::aws`].
    async fn value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Option<SecretValue>> {
        let result = self
            .client()
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version_id.map(str::to_string))
            .set_version_stage(stage.map(str::to_string))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if service_error_is(&e, |s| s.is_resource_not_found_exception()) => {
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::aws(
                    "GetSecretValue",
                    format!(
                        "{secret_id} (version {}, stage {})",
                        version_id.unwrap_or("any"),
                        stage.unwrap_or("any")
                    ),
                    e,
                ));
            }
        };
        match out.secret_string() {
            Some(text) => Ok(Some(SecretValue::new(text))),
            None => Err(Error::Config(format!(
                "secret {secret_id} is binary; rotation needs a string (a token or a JSON object of tokens)"
            ))),
        }
    }

    /// `PutSecretValue` with the version id as `ClientRequestToken`, stage `AWSPENDING`.
    ///
    /// # Errors
    /// [`Error::aws`] of `PutSecretValue`.
    async fn put_pending(
        &self,
        secret_id: &str,
        version_id: &str,
        value: &SecretValue,
    ) -> Result<()> {
        self.client()
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(version_id)
            .secret_string(value.expose_secret())
            .version_stages(crate::rotation::AWSPENDING)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    "PutSecretValue",
                    format!("{secret_id} version {version_id}"),
                    e,
                )
            })?;
        Ok(())
    }

    /// `UpdateSecretVersionStage`.
    ///
    /// # Errors
    /// [`Error::aws`] of `UpdateSecretVersionStage`.
    async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<()> {
        self.client()
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_string))
            .set_remove_from_version_id(from.map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    "UpdateSecretVersionStage",
                    format!("{secret_id} {stage}"),
                    e,
                )
            })?;
        Ok(())
    }
}
