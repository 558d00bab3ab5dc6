# Copy to my-site.pkrvars.hcl, fill in, and build:
#   packer build -var-file=my-site.pkrvars.hcl -only=vsphere-clone.pke-node packer/pke-node.pkr.hcl
# Keep passwords out of the file: export PKR_VAR_vcenter_password and PKR_VAR_ssh_password.

vcenter_server   = "vcenter.example.internal"
vcenter_username = "packer@vsphere.local"
vcenter_password = "set-PKR_VAR_vcenter_password-instead"
vcenter_insecure = false

datacenter    = "DC0"
cluster       = "DC0_C0"
datastore     = "LocalDS_0"
folder        = "templates"
network       = "VM Network"
template_name = "pke-node-k8s-1.31.2"
base_template = "debian-12-base"

cpus         = 2
memory_mb    = 4096
disk_size_mb = 40960

ssh_username = "pke-build"
ssh_password = "set-PKR_VAR_ssh_password-instead"

kubernetes_version = "1.31.2"
containerd_version = "1.6.20"
runc_version       = "1.1.5"
crictl_version     = "1.31.1"

# Air-gapped: put kubeadm, kubelet, kubectl, cri-tools, kubernetes-cni, containerd and runc
# .debs (and any base packages the OS mirror cannot serve) in one directory.
# package_source     = "local"
# local_packages_dir = "/srv/pke/debs"
# image_registry     = "registry.example.internal/k8s"
