import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { PkeError } from '../../core/errors.ts';

/**
 * vim25 SOAP envelopes in and out. fast-xml-parser does both directions without native code, is
 * the most used XML library on npm and is kept up; what is ours is only vim25's shape: managed
 * object references (`type` attribute), typed values (`xsi:type`) and faults.
 */

/** A managed object reference: `{type: 'VirtualMachine', value: 'vm-42'}`. */
export interface Moref {
  type: string;
  value: string;
}

/** What goes into a request body: nested elements in order, arrays repeat their element. */
export type SoapValue = string | number | boolean | SoapRef | SoapTyped | SoapObject | SoapValue[] | undefined;
export interface SoapObject {
  [element: string]: SoapValue;
}
/** A managed object reference as an argument. */
export interface SoapRef {
  readonly __ref: Moref;
}
/** A value of a derived or `anyType` element (`xsi:type`): an `OptionValue`'s value, a `VirtualDisk` device. */
export interface SoapTyped {
  readonly __type: string;
  readonly value: SoapValue;
}

export const ref = (moref: Moref): SoapRef => ({ __ref: moref });
export const typed = (type: string, value: SoapValue): SoapTyped => ({ __type: type, value });

/** A parsed answer: elements by local name; attributes under `@_`; text under `#text` when there are attributes. */
export type XmlNode = { [key: string]: XmlValue };
export type XmlValue = string | XmlNode | XmlValue[];

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', suppressEmptyNode: false });
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  // Values are exact: a redacted `.encoding` is a single space.
  trimValues: false,
  // vim25 answers carry no entities beyond XML's own; none are expanded past those.
  processEntities: true,
  htmlEntities: false,
});

/** The envelope of one call: `<METHOD xmlns="urn:vim25"><_this type=...>...</_this>ARGS</METHOD>`. */
export function envelope(method: string, self: Moref, args: SoapObject): string {
  const body = { '@_xmlns': 'urn:vim25', _this: toXml(ref(self)), ...toXmlObject(args) };
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({
    'soapenv:Envelope': {
      '@_xmlns:soapenv': 'http://schemas.xmlsoap.org/soap/envelope/',
      '@_xmlns:xsd': 'http://www.w3.org/2001/XMLSchema',
      '@_xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance',
      'soapenv:Body': { [method]: body },
    },
  })}`;
}

type BuilderValue = string | { [key: string]: BuilderValue } | BuilderValue[];

function toXmlObject(object: SoapObject): { [key: string]: BuilderValue } {
  const out: { [key: string]: BuilderValue } = {};
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined) continue;
    out[key] = Array.isArray(value) ? value.filter((v) => v !== undefined).map(toXml) : toXml(value);
  }
  return out;
}

function toXml(value: SoapValue): BuilderValue {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.map(toXml);
  if ('__ref' in value) {
    const moref = (value as SoapRef).__ref;
    return { '@_type': moref.type, '#text': moref.value };
  }
  if ('__type' in value) {
    const { __type, value: inner } = value as SoapTyped;
    const content = toXml(inner);
    return typeof content === 'string' ? { '@_xsi:type': __type, '#text': content } : { '@_xsi:type': __type, ...content };
  }
  return toXmlObject(value as SoapObject);
}

/** A fault from vSphere: the call, the object it was made on, vSphere's own fault type and message. */
export class VsphereFault extends PkeError {
  readonly call: string;
  readonly faultType: string;
  readonly faultMessage: string;

  constructor(call: string, object: string, faultType: string, faultMessage: string) {
    super(`vSphere ${call} on ${object}: ${faultType}: ${faultMessage || '(no message)'}`);
    this.call = call;
    this.faultType = faultType;
    this.faultMessage = faultMessage;
  }
}

/** The body of a SOAP answer: the `returnval` of `METHODResponse`, or a thrown fault. */
export function parseAnswer(text: string, call: string, object: string): XmlValue | undefined {
  let document: XmlNode;
  try {
    document = parser.parse(text) as XmlNode;
  } catch (error) {
    throw new PkeError(`vSphere ${call} on ${object}: the answer is not XML: ${(error as Error).message}`);
  }
  const body = child(child(document, 'Envelope'), 'Body');
  if (!isNode(body)) throw new PkeError(`vSphere ${call} on ${object}: the answer has no SOAP body`);
  const fault = body.Fault;
  if (isNode(fault)) {
    const detail = fault.detail;
    const [faultType] = isNode(detail) ? faultTypeOf(detail) : ['Fault'];
    throw new VsphereFault(call, object, faultType, text_(fault.faultstring));
  }
  const response = body[`${call}Response`];
  return isNode(response) ? response.returnval : undefined;
}

/** The fault type in a `detail` (`<InvalidLoginFault xsi:type="InvalidLogin"/>`) or a task's `error.fault`. */
export function faultTypeOf(detail: XmlNode): [string, XmlNode | undefined] {
  const type = detail['@_type'];
  if (typeof type === 'string') return [localName(type), detail];
  for (const [key, value] of Object.entries(detail)) {
    if (key.startsWith('@_') || key === '#text') continue;
    const node = isNode(value) ? value : undefined;
    const inner = node?.['@_type'];
    return [typeof inner === 'string' ? localName(inner) : key.replace(/Fault$/, ''), node];
  }
  return ['Fault', undefined];
}

function localName(name: string): string {
  return name.slice(name.indexOf(':') + 1);
}

export function isNode(value: XmlValue | undefined): value is XmlNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function child(value: XmlValue | undefined, name: string): XmlValue | undefined {
  return isNode(value) ? value[name] : undefined;
}

/** Every occurrence of a repeated element (one element parses as a value, several as an array). */
export function all(value: XmlValue | undefined): XmlValue[] {
  if (value === undefined || value === '') return [];
  return Array.isArray(value) ? value : [value];
}

/** An element's text, whether or not it has attributes. */
export function text_(value: XmlValue | undefined): string {
  if (typeof value === 'string') return value;
  if (isNode(value)) {
    const inner = value['#text'];
    return typeof inner === 'string' ? inner : '';
  }
  return '';
}

export function morefOf(value: XmlValue | undefined): Moref | undefined {
  if (!isNode(value)) return undefined;
  const type = value['@_type'];
  const text = value['#text'];
  return typeof type === 'string' && typeof text === 'string' ? { type, value: text } : undefined;
}
