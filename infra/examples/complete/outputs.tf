output "alb_arn" {
  description = "ARN of the load balancer."
  value       = aws_lb.app.arn
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.app.dns_name
}

output "alb_listener_arn" {
  description = "ARN of the production listener whose weights the workflow moves: `listenerArn` of the execution input."
  value       = aws_lb_listener.https.arn
}

output "tg_blue_arn" {
  description = "ARN of the target group the first task set runs on; one of `targetGroupArns`."
  value       = aws_lb_target_group.app["blue"].arn
}

output "tg_green_arn" {
  description = "ARN of the other target group of the pair; one of `targetGroupArns`."
  value       = aws_lb_target_group.app["green"].arn
}

output "ecs_cluster_name" {
  description = "Name of the ECS cluster: `cluster` of the execution input."
  value       = aws_ecs_cluster.app.name
}

output "ecs_service_name" {
  description = "Name of the ECS service: `service` of the execution input."
  value       = aws_ecs_service.app.name
}

output "state_machine_arn" {
  description = "ARN of the deploy state machine."
  value       = module.deployer.state_machine_arn
}

output "function_arns" {
  description = "ARN of each Lambda function, by function name."
  value       = module.deployer.function_arns
}

output "function_role_arns" {
  description = "ARN of each function's role, by function name."
  value       = module.deployer.function_role_arns
}

output "state_machine_role_arns" {
  description = "ARN of each state machine's role (deploy, rotate)."
  value       = module.deployer.state_machine_role_arns
}

output "rotation_state_machine_arn" {
  description = "ARN of the rotation workflow's state machine."
  value       = module.deployer.rotation_state_machine_arn
}

output "deployer_token_secret_arn" {
  description = "ARN of the secret of the deployer's own Dynatrace token: put its value with the AWS CLI."
  value       = module.deployer.deployer_token_secret_arn
}

output "admin_token_secret_arn" {
  description = "ARN of the secret of the Dynatrace token that rotations manage tokens with: put its value with the AWS CLI."
  value       = module.deployer.admin_token_secret_arn
}

output "webhook_token_secret_arn" {
  description = "ARN of the secret of the webhook's bearer token: put its value, and give Spinnaker the same."
  value       = module.deployer.webhook_token_secret_arn
}

output "ecr_push_rule_arn" {
  description = "ARN of the EventBridge rule whose ECR pushes start deploys."
  value       = module.deployer.ecr_push_rule_arn
}

output "dynatrace_secret_arns" {
  description = "ARN of each Dynatrace secret, by name: put their values with the AWS CLI."
  value       = module.deployer.dynatrace_secret_arns
}

output "kms_key_arn" {
  description = "ARN of the key of the secrets and log groups."
  value       = module.deployer.kms_key_arn
}

output "webhook_url" {
  description = "The webhook URL for Spinnaker; null unless webhook_enabled."
  value       = module.deployer.webhook_url
}

output "execution_input" {
  description = "An execution input for this service: replace TAG with the image tag to deploy and pass it to StartExecution."
  value = jsonencode({
    cluster         = aws_ecs_cluster.app.name
    service         = aws_ecs_service.app.name
    container       = local.container_name
    image           = "${data.aws_ecr_repository.app.repository_url}:TAG"
    listenerArn     = aws_lb_listener.https.arn
    targetGroupArns = [aws_lb_target_group.app["blue"].arn, aws_lb_target_group.app["green"].arn]
    strategy        = { type = "steps", steps = [{ greenWeight = 10 }, { greenWeight = 100 }] }
  })
}
