# Every secret the module creates. Terraform creates the secrets only: their values never pass
# through Terraform, so they are in no plan and no state. Put them with the AWS CLI after apply
# (README.md, step 4), for what you use: the deployer and admin tokens with Dynatrace, the
# webhook token with the webhook. An empty secret costs its monthly fee and grants nothing.

# The Dynatrace tokens the services' containers read through their task definitions'
# `secrets`; rotate-secret rotates them with var.rotation_enabled.
resource "aws_secretsmanager_secret" "dynatrace" {
  for_each = var.dynatrace_secrets
  # Rotation needs a Dynatrace admin token the operator provides: it is var.rotation_enabled.
  #checkov:skip=CKV2_AWS_57:rotation is var.rotation_enabled; it needs a Dynatrace admin token the operator puts first

  name                    = "${var.secret_name_prefix}/${each.key}"
  description             = each.value
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

# The functions' own Dynatrace token: metrics.read (verification) and events.ingest
# (deployment events).
resource "aws_secretsmanager_secret" "deployer_token" {
  # A token with these scopes is rotated by hand in Dynatrace; rotate-secret rotates the
  # tokens the services hold.
  #checkov:skip=CKV2_AWS_57:the functions' own Dynatrace token is replaced by hand (README.md); rotate-secret rotates the services' tokens

  name                    = "${var.secret_name_prefix}/deployer-token"
  description             = "Dynatrace token of ${var.name}'s functions: metrics.read and events.ingest."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

# The token rotate-secret mints, reads and revokes tokens with: apiTokens.read, apiTokens.write.
resource "aws_secretsmanager_secret" "admin_token" {
  #checkov:skip=CKV2_AWS_57:the admin token mints the others and is replaced by hand (README.md)

  name                    = "${var.secret_name_prefix}/admin-token"
  description             = "Dynatrace token rotate-secret manages the other tokens with: apiTokens.read and apiTokens.write."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

# The webhook's bearer token (docs/triggers.md): AWSCURRENT and AWSPENDING are both accepted.
resource "aws_secretsmanager_secret" "webhook_token" {
  #checkov:skip=CKV2_AWS_57:changed by hand with Spinnaker's configuration, AWSPENDING first (docs/triggers.md)

  name                    = "${var.name}/webhook-token"
  description             = "Bearer token of ${var.name}'s webhook (the trigger's Function URL)."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

resource "aws_lambda_permission" "rotation" {
  for_each = { for k, v in var.dynatrace_secrets : k => v if local.rotation_enabled }

  statement_id   = "SecretsManagerRotation-${replace(each.key, "/[^A-Za-z0-9_-]/", "-")}"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function["rotate-secret"].function_name
  principal      = "secretsmanager.amazonaws.com"
  source_arn     = aws_secretsmanager_secret.dynatrace[each.key].arn
  source_account = local.account
}

resource "aws_secretsmanager_secret_rotation" "dynatrace" {
  for_each = { for k, v in var.dynatrace_secrets : k => v if local.rotation_enabled }

  secret_id           = aws_secretsmanager_secret.dynatrace[each.key].id
  rotation_lambda_arn = aws_lambda_function.function["rotate-secret"].arn
  # The first rotation waits for the schedule: values are put out of band after apply.
  rotate_immediately = false

  rotation_rules {
    schedule_expression = var.rotation_schedule_expression
  }

  depends_on = [aws_lambda_permission.rotation]

  lifecycle {
    precondition {
      condition     = local.dynatrace_enabled
      error_message = "rotation_enabled needs dynatrace_api_url: rotate-secret mints and revokes tokens through the Dynatrace API."
    }
  }
}
