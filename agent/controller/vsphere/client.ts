import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'undici';
import { PkeError, errorMessage } from '../../core/errors.ts';
import {
  type Moref,
  type SoapObject,
  type SoapValue,
  VsphereFault,
  type XmlNode,
  type XmlValue,
  all,
  child,
  envelope,
  faultTypeOf,
  isNode,
  morefOf,
  parseAnswer,
  ref,
  text_,
  typed,
} from './soap.ts';
import { type VsphereTls, vspherePool } from './transport.ts';

/**
 * A vim25 SOAP client with only the calls provisioning needs: a session (kept alive, logged in
 * again when vCenter ends it), inventory paths, properties, tasks, clone, reconfigure, power,
 * destroy. Every failure names the call, the object and vSphere's fault type and message.
 */

export interface VsphereConnection {
  server: string;
  port?: number;
  username: string;
  password: string;
  /** Relative inventory paths are looked up below this datacenter. */
  datacenter: string;
  tls: VsphereTls;
}

/** Where an inventory path of each kind starts, below the datacenter. */
const INVENTORY_FOLDER = { vm: 'vm', folder: 'vm', host: 'host', datastore: 'datastore', network: 'network' } as const;
export type InventoryKind = keyof typeof INVENTORY_FOLDER;

export interface CloneRequest {
  template: Moref;
  name: string;
  folder: Moref;
  pool: Moref;
  datastore?: Moref;
  /** ExtraConfig keys the clone starts with (guestinfo). */
  extraConfig: Record<string, string>;
}

export interface HardwareChange {
  cpus?: number;
  memoryMiB?: number;
  /** The first disk grows to this size (never shrinks). */
  diskGiB?: number;
  /** Connect the first network card to this network. */
  network?: { moref: Moref; name: string };
  extraConfig?: Record<string, string>;
}

export interface VmInfo {
  moref: Moref;
  name: string;
  /** BIOS UUID (`config.uuid`): what the guest reads from /sys/class/dmi/id/product_uuid. */
  biosUuid: string;
  powerState: 'poweredOn' | 'poweredOff' | 'suspended';
  /** The guest's primary IP as VMware Tools reports it. */
  ipAddress?: string;
  template: boolean;
  cpus: number;
  memoryMiB: number;
  diskKiB: number[];
  networks: string[];
  /** Later entries win: a key set again replaces the earlier value. */
  extraConfig: Map<string, string>;
}

interface ServiceContent {
  rootFolder: Moref;
  propertyCollector: Moref;
  searchIndex: Moref;
  sessionManager: Moref;
}

const SERVICE_INSTANCE: Moref = { type: 'ServiceInstance', value: 'ServiceInstance' };
const CALL_TIMEOUT_MS = 120_000;

export class VsphereClient {
  readonly connection: VsphereConnection;
  private readonly pool: Pool;
  private readonly url: URL;
  private content: ServiceContent | undefined;
  private cookie: string | undefined;
  private loggingIn: Promise<void> | undefined;

  private constructor(connection: VsphereConnection) {
    this.connection = connection;
    const host = connection.server.includes(':') && !connection.server.startsWith('[') ? `[${connection.server}]` : connection.server;
    this.url = new URL(`https://${host}${connection.port ? `:${connection.port}` : ''}/sdk`);
    this.pool = vspherePool(this.url.origin, connection.tls);
  }

  /** Connects and logs in; wrong credentials fail here (`InvalidLogin`). */
  static async connect(connection: VsphereConnection): Promise<VsphereClient> {
    const client = new VsphereClient(connection);
    try {
      await client.login();
    } catch (error) {
      await client.pool.close();
      throw error;
    }
    return client;
  }

  get server(): string {
    return this.url.host;
  }

  private async login(): Promise<void> {
    this.loggingIn ??= (async () => {
      this.cookie = undefined;
      const content = await this.raw('RetrieveServiceContent', SERVICE_INSTANCE, 'vCenter', {});
      const morefs = (name: string) => {
        const value = morefOf(child(content, name));
        if (!value) throw new PkeError(`vSphere RetrieveServiceContent on ${this.server}: the answer has no ${name}`);
        return value;
      };
      this.content = {
        rootFolder: morefs('rootFolder'),
        propertyCollector: morefs('propertyCollector'),
        searchIndex: morefs('searchIndex'),
        sessionManager: morefs('sessionManager'),
      };
      await this.raw('Login', this.content.sessionManager, `user ${this.connection.username}`, {
        userName: this.connection.username,
        password: this.connection.password,
      });
    })().finally(() => {
      this.loggingIn = undefined;
    });
    return this.loggingIn;
  }

  async logout(): Promise<void> {
    if (this.content && this.cookie) {
      await this.raw('Logout', this.content.sessionManager, 'session', {}).catch(() => undefined);
      this.cookie = undefined;
    }
  }

  async close(): Promise<void> {
    await this.logout();
    await this.pool.close();
  }

  /** One call in the session; a session vCenter has ended (`NotAuthenticated`) is logged in again once. */
  async call(method: string, self: Moref, object: string, args: SoapObject): Promise<XmlValue | undefined> {
    if (this.loggingIn) await this.loggingIn;
    try {
      return await this.raw(method, self, object, args);
    } catch (error) {
      if (!(error instanceof VsphereFault) || error.faultType !== 'NotAuthenticated') throw error;
      await this.login();
      return this.raw(method, self, object, args);
    }
  }

  private async raw(method: string, self: Moref, object: string, args: SoapObject): Promise<XmlValue | undefined> {
    const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', soapaction: 'urn:vim25/7.0' };
    if (this.cookie) headers.cookie = this.cookie;
    let text: string;
    let status: number;
    try {
      const answer = await this.pool.request({
        path: this.url.pathname,
        method: 'POST',
        headers,
        body: envelope(method, self, args),
        headersTimeout: CALL_TIMEOUT_MS,
        bodyTimeout: CALL_TIMEOUT_MS,
      });
      status = answer.statusCode;
      const setCookie = answer.headers['set-cookie'];
      const session = (Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []).find((c) =>
        c.startsWith('vmware_soap_session='),
      );
      if (session) this.cookie = session.split(';')[0];
      text = await answer.body.text();
    } catch (error) {
      throw new PkeError(`vSphere ${method} on ${object}: ${this.url.origin}: ${errorMessage(error)}`, {
        context: { url: this.url.origin },
        cause: error,
      });
    }
    if (status >= 400 && !text.includes('Fault>')) {
      throw new PkeError(`vSphere ${method} on ${object}: HTTP ${status} from ${this.url.origin}`, {
        context: { url: this.url.origin, status },
      });
    }
    return parseAnswer(text, method, object);
  }

  private get service(): ServiceContent {
    if (!this.content) throw new PkeError('vSphere: not logged in');
    return this.content;
  }

  /** The absolute inventory path of a path given relative to the datacenter's folder of that kind. */
  inventoryPath(kind: InventoryKind, path: string): string {
    if (path.startsWith('/')) return path;
    return `/${this.connection.datacenter}/${INVENTORY_FOLDER[kind]}/${path}`.replace(/\/+$/, '');
  }

  /** The object at an inventory path, or undefined. */
  async find(kind: InventoryKind, path: string): Promise<Moref | undefined> {
    const full = this.inventoryPath(kind, path);
    const answer = await this.call('FindByInventoryPath', this.service.searchIndex, `inventory path ${full}`, { inventoryPath: full });
    return morefOf(answer);
  }

  /** Like find, but a missing object is an error naming it and its kind. */
  async mustFind(kind: InventoryKind, path: string, what: string): Promise<Moref> {
    const found = await this.find(kind, path);
    if (!found) throw new PkeError(`vSphere: ${what} ${this.inventoryPath(kind, path)} not found`);
    return found;
  }

  /** The resource pool VMs go into: a resource pool's path, or a cluster's or host's (its root pool). */
  async resourcePool(path: string): Promise<Moref> {
    const found = await this.mustFind('host', path, 'resource pool or cluster');
    if (found.type === 'ResourcePool') return found;
    const pool = morefOf((await this.properties(found, ['resourcePool'])).get('resourcePool'));
    if (!pool) throw new PkeError(`vSphere: ${this.inventoryPath('host', path)} (${found.type}) has no resource pool`);
    return pool;
  }

  /** Properties of one object, by property path. */
  async properties(object: Moref, paths: string[]): Promise<Map<string, XmlValue>> {
    const answer = await this.call('RetrievePropertiesEx', this.service.propertyCollector, `${object.type} ${object.value}`, {
      specSet: { propSet: { type: object.type, pathSet: paths }, objectSet: { obj: ref(object), skip: false } },
      options: {},
    });
    const found = new Map<string, XmlValue>();
    for (const objectContent of all(child(answer, 'objects'))) {
      for (const prop of all(child(objectContent, 'propSet'))) found.set(text_(child(prop, 'name')), child(prop, 'val') ?? '');
    }
    return found;
  }

  /** Waits for a task and answers its result; a failed task throws its fault, naming the call and object. */
  async waitForTask(task: Moref, call: string, object: string): Promise<XmlValue | undefined> {
    let pause = 5;
    for (;;) {
      const props = await this.properties(task, ['info.state', 'info.error', 'info.result']);
      const state = text_(props.get('info.state'));
      if (state === 'success') return props.get('info.result');
      if (state === 'error') {
        const error = props.get('info.error');
        const fault = child(error, 'fault');
        const [type] = isNode(fault) ? faultTypeOf(fault) : ['Fault'];
        throw new VsphereFault(call, object, type, text_(child(error, 'localizedMessage')) || faultDetail(fault));
      }
      await sleep(pause);
      pause = Math.min(pause * 2, 500);
    }
  }

  private async task(method: string, self: Moref, object: string, args: SoapObject): Promise<XmlValue | undefined> {
    const task = morefOf(await this.call(method, self, object, args));
    if (!task) throw new PkeError(`vSphere ${method} on ${object}: the answer names no task`);
    return this.waitForTask(task, method, object);
  }

  /**
   * Clones a template (or VM) with the given ExtraConfig, powered off. A linked clone when the
   * template has a snapshot (a child disk of its current snapshot), else a full clone.
   */
  async cloneVm(request: CloneRequest): Promise<Moref> {
    const snapshot = morefOf((await this.properties(request.template, ['snapshot.currentSnapshot'])).get('snapshot.currentSnapshot'));
    const object = `template ${request.template.value} (clone ${request.name})`;
    const result = await this.task('CloneVM_Task', request.template, object, {
      folder: ref(request.folder),
      name: request.name,
      spec: {
        location: {
          datastore: request.datastore ? ref(request.datastore) : undefined,
          diskMoveType: snapshot ? 'createNewChildDiskBacking' : undefined,
          pool: ref(request.pool),
        },
        template: false,
        config: { extraConfig: optionValues(request.extraConfig) },
        powerOn: false,
        snapshot: snapshot ? ref(snapshot) : undefined,
      },
    });
    const vm = morefOf(result);
    if (!vm) throw new PkeError(`vSphere CloneVM_Task on ${object}: the task answered no VM`);
    return vm;
  }

  /** CPUs, memory, the first disk's size, the first NIC's network, ExtraConfig keys: one ReconfigVM_Task. */
  async reconfigure(vm: Moref, change: HardwareChange, name = vm.value): Promise<void> {
    const deviceChange: SoapValue[] = [];
    if (change.diskGiB !== undefined || change.network !== undefined) {
      const devices = all(child((await this.properties(vm, ['config.hardware.device'])).get('config.hardware.device'), 'VirtualDevice'));
      if (change.diskGiB !== undefined) {
        const disk = devices.find((d) => isNode(d) && d['@_type'] === 'VirtualDisk');
        if (!isNode(disk)) throw new PkeError(`vSphere ReconfigVM_Task on VM ${name}: it has no disk to grow`);
        const kib = change.diskGiB * 1024 * 1024;
        if (Number(text_(disk.capacityInKB)) < kib) {
          const edited: XmlNode = { ...disk, capacityInKB: String(kib) };
          if ('capacityInBytes' in disk) edited.capacityInBytes = String(kib * 1024);
          deviceChange.push({ operation: 'edit', device: asSoap(edited) });
        }
      }
      if (change.network !== undefined) {
        const nic = devices.find((d) => isNode(d) && child(d, 'macAddress') !== undefined);
        if (!isNode(nic)) throw new PkeError(`vSphere ReconfigVM_Task on VM ${name}: it has no network card`);
        const backing = typed('VirtualEthernetCardNetworkBackingInfo', {
          deviceName: change.network.name,
          network: ref(change.network.moref),
        });
        const edited = asSoap(nic) as { __type: string; value: SoapObject };
        deviceChange.push({ operation: 'edit', device: typed(edited.__type, { ...edited.value, backing }) });
      }
    }
    await this.task('ReconfigVM_Task', vm, `VM ${name}`, {
      spec: {
        numCPUs: change.cpus,
        memoryMB: change.memoryMiB,
        deviceChange: deviceChange.length > 0 ? deviceChange : undefined,
        extraConfig: change.extraConfig ? optionValues(change.extraConfig) : undefined,
      },
    });
  }

  async powerOn(vm: Moref, name = vm.value): Promise<void> {
    await this.task('PowerOnVM_Task', vm, `VM ${name}`, {});
  }

  async powerOff(vm: Moref, name = vm.value): Promise<void> {
    await this.task('PowerOffVM_Task', vm, `VM ${name}`, {});
  }

  async destroy(vm: Moref, name = vm.value): Promise<void> {
    await this.task('Destroy_Task', vm, `VM ${name}`, {});
  }

  /** What provisioning and the lab read of a VM, in one property retrieval. */
  async vmInfo(vm: Moref): Promise<VmInfo> {
    const props = await this.properties(vm, [
      'name',
      'config.uuid',
      'config.template',
      'config.hardware.numCPU',
      'config.hardware.memoryMB',
      'config.hardware.device',
      'config.extraConfig',
      'runtime.powerState',
      'guest.ipAddress',
    ]);
    const extraConfig = new Map<string, string>();
    for (const option of all(child(props.get('config.extraConfig'), 'OptionValue'))) {
      extraConfig.set(text_(child(option, 'key')), text_(child(option, 'value')));
    }
    const devices = all(child(props.get('config.hardware.device'), 'VirtualDevice'));
    const ip = text_(props.get('guest.ipAddress'));
    return {
      moref: vm,
      name: text_(props.get('name')),
      biosUuid: text_(props.get('config.uuid')).toLowerCase(),
      powerState: text_(props.get('runtime.powerState')) as VmInfo['powerState'],
      ...(ip ? { ipAddress: ip } : {}),
      template: text_(props.get('config.template')) === 'true',
      cpus: Number(text_(props.get('config.hardware.numCPU'))),
      memoryMiB: Number(text_(props.get('config.hardware.memoryMB'))),
      diskKiB: devices.filter((d) => isNode(d) && d['@_type'] === 'VirtualDisk').map((d) => Number(text_(child(d, 'capacityInKB')))),
      networks: devices
        .map((d) => child(child(d, 'backing'), 'deviceName'))
        .filter((n) => n !== undefined)
        .map((n) => text_(n)),
      extraConfig,
    };
  }

  /** The VMs directly in a folder, by name. */
  async vmsIn(folder: Moref): Promise<Map<string, Moref>> {
    const children = all(child((await this.properties(folder, ['childEntity'])).get('childEntity'), 'ManagedObjectReference'));
    const vms = children.map(morefOf).filter((m): m is Moref => m?.type === 'VirtualMachine');
    const named = new Map<string, Moref>();
    await Promise.all(
      vms.map(async (vm) => {
        const name = text_((await this.properties(vm, ['name'])).get('name'));
        named.set(name, vm);
      }),
    );
    return named;
  }
}

function optionValues(values: Record<string, string>): SoapValue[] {
  return Object.entries(values).map(([key, value]) => ({ key, value: typed('xsd:string', value) }));
}

function faultDetail(fault: XmlValue | undefined): string {
  if (!isNode(fault)) return '';
  return Object.entries(fault)
    .filter(([key]) => !key.startsWith('@_'))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
}

/**
 * A parsed device back into a request value. The parser keeps one `type` attribute for both a
 * reference's `type` and `xsi:type`: an element with children, or whose type is prefixed
 * (`xsd:int`), is typed; one with only text is a reference.
 */
function asSoap(value: XmlValue): SoapValue {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(asSoap);
  const type = value['@_type'];
  const elements = Object.entries(value).filter(([key]) => !key.startsWith('@_') && key !== '#text');
  if (typeof type === 'string' && elements.length === 0 && !type.includes(':')) return ref({ type, value: text_(value) });
  const object: SoapObject = {};
  for (const [key, inner] of elements) object[key] = asSoap(inner);
  if (typeof type !== 'string') return object;
  return typed(type, elements.length === 0 ? text_(value) : object);
}
