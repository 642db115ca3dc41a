/**
 * Minimal typings for the parts of dcmjs (0.52, which ships no .d.ts) that the decoder and the test
 * fixtures use. Hand-written because there is no maintained @types package for dcmjs.
 */
declare module 'dcmjs' {
  export interface DicomElement {
    vr: string;
    Value: unknown[];
  }
  export type DicomDataset = Record<string, DicomElement>;

  export interface ReadOptions {
    ignoreErrors?: boolean;
    untilTag?: string | null;
    includeUntilTagValue?: boolean;
    noCopy?: boolean;
    forceStoreRaw?: boolean;
  }

  export class DicomDict {
    constructor(meta: DicomDataset);
    meta: DicomDataset;
    dict: DicomDataset;
    write(writeOptions?: Record<string, unknown>): ArrayBuffer;
  }

  export class DicomMessage {
    static readFile(buffer: ArrayBuffer, options?: ReadOptions): DicomDict;
  }

  export class DicomMetaDictionary {
    static naturalizeDataset(dataset: DicomDataset): Record<string, unknown>;
    static denaturalizeDataset(dataset: Record<string, unknown>): DicomDataset;
    static uid(): string;
  }

  export interface Logger {
    setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent' | number, persist?: boolean): void;
    getLevel(): number;
    getLogger(name: string): Logger;
    getLoggers(): Record<string, Logger>;
  }

  export const data: {
    DicomDict: typeof DicomDict;
    DicomMessage: typeof DicomMessage;
    DicomMetaDictionary: typeof DicomMetaDictionary;
  };
  export const log: Logger;

  const dcmjs: { data: typeof data; log: Logger };
  export default dcmjs;
}
