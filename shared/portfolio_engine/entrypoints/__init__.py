"""Entry points that are neither Lambda handlers nor the CLI: the SageMaker training scripts."""
