# One customer-managed key for what the module stores: the Dynatrace secrets and the log
# groups of the functions and the state machine (plus var.additional_log_group_names).

resource "aws_kms_key" "this" {
  description             = "${var.name}: Dynatrace secrets and deploy logs"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  # A key policy's Resource "*" is the key itself, and the account statement below is AWS's
  # default key policy statement, which delegates all use of the key to IAM policies.
  #checkov:skip=CKV_AWS_109:key policy: "*" is this key; the account-root statement is AWS's default delegation to IAM
  #checkov:skip=CKV_AWS_111:key policy: "*" is this key; the account-root statement is AWS's default delegation to IAM
  #checkov:skip=CKV_AWS_356:key policy: "*" is this key, no other resource can be named
  # In a key policy "*" is this key. The account statement is AWS's default: it lets IAM
  # policies grant use of the key (the task execution roles' kms:Decrypt through Secrets
  # Manager) and keeps the key manageable; without it the key can lock everyone out.
  statement {
    sid       = "AccountManagesTheKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsTheseLogGroups"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:DescribeKey",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = [for n in local.log_group_names : "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:${n}"]
    }
  }
}
