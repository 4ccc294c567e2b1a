# The Dynatrace tokens the services' containers read through their task definitions'
# `secrets`. Terraform creates the secrets only: their values never pass through Terraform,
# so they are in no plan and no state. Put them with the AWS CLI (README.md, step 4).

resource "aws_secretsmanager_secret" "dynatrace" {
  for_each = var.dynatrace_secrets
  # Rotation needs the rotate-secret function, which is not part of this release: it is
  # var.rotation_enabled (off by default) with var.rotation_function_arn.
  #checkov:skip=CKV2_AWS_57:rotation is var.rotation_enabled; it needs the rotation function, not part of this release

  name                    = "${var.secret_name_prefix}/${each.key}"
  description             = each.value
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

resource "aws_lambda_permission" "rotation" {
  for_each = { for k, v in var.dynatrace_secrets : k => v if var.rotation_enabled }

  statement_id   = "SecretsManagerRotation-${replace(each.key, "/[^A-Za-z0-9_-]/", "-")}"
  action         = "lambda:InvokeFunction"
  function_name  = var.rotation_function_arn
  principal      = "secretsmanager.amazonaws.com"
  source_arn     = aws_secretsmanager_secret.dynatrace[each.key].arn
  source_account = local.account
}

resource "aws_secretsmanager_secret_rotation" "dynatrace" {
  for_each = { for k, v in var.dynatrace_secrets : k => v if var.rotation_enabled }

  secret_id           = aws_secretsmanager_secret.dynatrace[each.key].id
  rotation_lambda_arn = var.rotation_function_arn
  # The first rotation waits for the schedule: values are put out of band after apply.
  rotate_immediately = false

  rotation_rules {
    schedule_expression = var.rotation_schedule_expression
  }

  depends_on = [aws_lambda_permission.rotation]

  lifecycle {
    precondition {
      condition     = var.rotation_function_arn != null
      error_message = "rotation_enabled needs rotation_function_arn, the function Secrets Manager invokes to rotate."
    }
  }
}
