import { PkeError } from '../core/errors.ts';
import { ADMIN_KUBECONFIG, KUBELET_KUBECONFIG, PKI_DIR } from '../kube/paths.ts';
import { PKI_FILES } from '../protocol/api.ts';
import type { Phase } from './phase.ts';

/** Written by kubeadm init or join: a node that has one has finished and its certificates are in use. */
const FINISHED_MARKERS = [ADMIN_KUBECONFIG, KUBELET_KUBECONFIG];

export const certsPhase: Phase<{ written: string[]; unchanged: string[] }> = {
  name: 'certs',
  summary: "Write the cluster's shared CAs and service-account keys where kubeadm expects them",
  needs: ['register'],
  appliesTo: (ctx) => ctx.config.role === 'master',
  run: async (ctx) => {
    const bundle = await ctx.controller.pki();
    const finished = (await Promise.all(FINISHED_MARKERS.map((p) => ctx.host.exists(p)))).some(Boolean);
    const plan: { path: string; content: string; mode: number }[] = [];
    const unchanged: string[] = [];
    const conflicts: string[] = [];

    for (const name of PKI_FILES) {
      const content = bundle.files[name];
      if (content === undefined) throw new PkeError(`certs: the controller's PKI bundle has no ${name}`);
      const path = `${PKI_DIR}/${name}`;
      const current = await ctx.host.readText(path);
      if (current === content) unchanged.push(name);
      else if (current !== undefined && finished) conflicts.push(name);
      else plan.push({ path, content, mode: name.endsWith('.key') ? 0o600 : 0o644 });
    }
    if (conflicts.length > 0) {
      throw new PkeError(
        `certs: ${conflicts.join(', ')} under ${PKI_DIR} differ from the cluster's and this node has already joined a cluster; refusing to overwrite (was this VM cloned from a node, or reset without removing /etc/kubernetes?)`,
      );
    }
    // Write every file only after all were checked, so a refusal leaves nothing half-written.
    for (const file of plan) await ctx.host.writeFile(file.path, file.content, { mode: file.mode });
    ctx.log.info('certs.done', { written: plan.length, unchanged: unchanged.length });
    return { written: plan.map((f) => f.path.slice(PKI_DIR.length + 1)), unchanged };
  },
};
