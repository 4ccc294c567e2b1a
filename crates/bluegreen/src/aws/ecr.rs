//! The [`ImageRegistry`] port over `aws-sdk-ecr`.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::ImageIdentifier;

use super::service_error_is;
use crate::error::{Error, Result};
use crate::ports::ImageRegistry;

/// Amazon ECR through the SDK.
#[derive(Debug, Clone)]
pub struct SdkEcr {
    client: Client,
}

impl SdkEcr {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        SdkEcr { client }
    }

    /// The SDK client, for calls the port does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl ImageRegistry for SdkEcr {
    /// Resolves the tag with DescribeImages (`imageIds=[{imageTag}]`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the repository does not exist in the registry; otherwise
    /// [`Error::aws`] of `DescribeImages`. A tag that does not exist is `Ok(None)`.
    async fn digest_of(
        &self,
        registry_id: &str,
        repository: &str,
        tag: &str,
    ) -> Result<Option<String>> {
        let result = self
            .client
            .describe_images()
            .registry_id(registry_id)
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .image_details()
                .iter()
                .find_map(|d| d.image_digest())
                .map(str::to_string)),
            Err(e) if service_error_is(&e, |s| s.is_image_not_found_exception()) => Ok(None),
            Err(e) if service_error_is(&e, |s| s.is_repository_not_found_exception()) => {
                Err(Error::InvalidInput(format!(
                    "ECR repository {repository} not found in registry {registry_id}; check the image name and the region"
                )))
            }
            Err(e) => Err(Error::aws(
                "DescribeImages",
                format!("{registry_id}/{repository}:{tag}"),
                e,
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
    use aws_sdk_ecr::types::ImageDetail;
    use aws_sdk_ecr::types::error::{ImageNotFoundException, RepositoryNotFoundException};
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    const DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[tokio::test]
    async fn a_tag_resolves_to_its_digest() {
        let rule = mock!(Client::describe_images)
            .match_requests(|i| {
                i.registry_id() == Some("123456789012")
                    && i.repository_name() == Some("orders")
                    && i.image_ids()
                        .iter()
                        .map(|id| id.image_tag())
                        .collect::<Vec<_>>()
                        == [Some("v2")]
            })
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .image_details(
                        ImageDetail::builder()
                            .image_digest(DIGEST)
                            .image_tags("v2")
                            .build(),
                    )
                    .build()
            });
        let ecr = SdkEcr::new(mock_client!(aws_sdk_ecr, [&rule]));

        assert_eq!(
            ecr.digest_of("123456789012", "orders", "v2")
                .await
                .unwrap()
                .as_deref(),
            Some(DIGEST)
        );
    }

    #[tokio::test]
    async fn a_missing_tag_is_none_and_a_missing_repository_is_invalid_input() {
        let no_tag = mock!(Client::describe_images).then_error(|| {
            DescribeImagesError::ImageNotFoundException(ImageNotFoundException::builder().build())
        });
        let no_repo = mock!(Client::describe_images).then_error(|| {
            DescribeImagesError::RepositoryNotFoundException(
                RepositoryNotFoundException::builder().build(),
            )
        });
        let ecr = SdkEcr::new(mock_client!(aws_sdk_ecr, [&no_tag, &no_repo]));

        assert_eq!(
            ecr.digest_of("123456789012", "orders", "v3").await.unwrap(),
            None
        );
        let err = ecr
            .digest_of("123456789012", "ordrs", "v2")
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains("ordrs"), "{err}");
    }
}
