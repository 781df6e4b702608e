# Flux on one cluster, bootstrapped by Terraform (or OpenTofu) with the
# fluxcd/flux provider, in the same run that creates the cluster. The
# flux_bootstrap_git resource does what `flux bootstrap git` does: it commits
# flux-system/gotk-components.yaml and gotk-sync.yaml to the cluster's
# directory, installs the controllers, and creates the flux-system Secret.
# docs/design/installing-flux.md explains the choices, and what of this file
# the project's tests check (it parses and is formatted; nothing runs it).

terraform {
  required_providers {
    flux = {
      source = "fluxcd/flux"
    }
    kubernetes = {
      source = "hashicorp/kubernetes"
    }
  }
}

variable "cluster" {
  description = "The cluster's directory under clusters/: development, staging or production."
  type        = string
}

variable "flux_version" {
  description = "The Flux version to install: versions.yaml flux.version, with a leading v."
  type        = string
}

variable "repository_ssh_url" {
  description = "The git repository of this tree, as an ssh:// URL."
  type        = string
}

variable "platform_oci_url" {
  description = "The OCI repository of platform releases, oci://HOST/PATH (the cluster variable platform_oci_url)."
  type        = string
}

variable "release_public_key" {
  description = "The public half of the platform release key (cosign.pub), which staging and production verify releases with; empty for development."
  type        = string
  default     = ""
}

variable "deploy_key_pem" {
  description = "The private key of a deploy key with write access to the repository."
  type        = string
  sensitive   = true
}

variable "kubeconfig_path" {
  type    = string
  default = "~/.kube/config"
}

provider "kubernetes" {
  config_path = var.kubeconfig_path
}

provider "flux" {
  kubernetes = {
    config_path = var.kubeconfig_path
  }
  git = {
    url    = var.repository_ssh_url
    branch = "main"
    ssh = {
      username    = "git"
      private_key = var.deploy_key_pem
    }
  }
}

# The flux-system namespace first: the ConfigMap and the Secret below go into
# it, and on a fresh cluster nothing else has created it yet (bootstrap
# creates it only later, in flux_bootstrap_git). Flux's install labels the
# namespace afterwards; ignore_changes leaves those labels to it.
resource "kubernetes_namespace" "flux_system" {
  metadata {
    name = "flux-system"
  }

  lifecycle {
    ignore_changes = [metadata]
  }
}

# The cluster variables, from the same run that knows them
# (docs/design/reconciliation.md#cluster-variables), as
# snippets/cluster-vars.sh writes them; the chart mirrors keep their defaults.
resource "kubernetes_config_map" "cluster_vars" {
  metadata {
    name      = "cluster-vars"
    namespace = kubernetes_namespace.flux_system.metadata[0].name
  }
  data = {
    cluster_name     = var.cluster
    platform_git_url = var.repository_ssh_url
    platform_oci_url = var.platform_oci_url
  }
}

# The key staging's and production's platform source verifies releases with
# (spec.verify): a public key, but Flux reads keys from a Secret.
resource "kubernetes_secret" "platform_release_key" {
  count = var.release_public_key == "" ? 0 : 1

  metadata {
    name      = "platform-release-key"
    namespace = kubernetes_namespace.flux_system.metadata[0].name
  }
  data = {
    "cosign.pub" = var.release_public_key
  }
}

resource "flux_bootstrap_git" "this" {
  depends_on = [kubernetes_config_map.cluster_vars, kubernetes_secret.platform_release_key]

  path    = "clusters/${var.cluster}"
  version = var.flux_version
  # The tree's own flux-system/kustomization.yaml, so the patches it carries
  # (cluster variables, the lockdown) are the ones Terraform commits.
  kustomization_override = file("${path.module}/../../clusters/${var.cluster}/flux-system/kustomization.yaml")
}
