/**
 * The settings every tier shares by name, validated in one place: each construct calls
 * `checkCommonSettings` on its resolved settings instead of one check per field.
 */
import { checkResources, type Resources } from './quantity';
import { checkStorage, type StorageProps } from './storage';
import { checkImage } from './validate';

/**
 * The main container of a tier. Every tier declares these two fields through this interface, and
 * its `<TIER>_DEFAULTS` table holds the values (with what each tier needs of them).
 */
export interface ContainerSettings {
  /** The main container's image, pinned by a version tag or digest (never `latest`). @default - the tier's `<TIER>_DEFAULTS.image` */
  readonly image?: string;
  /** Requests and limits of the main container. @default - the tier's `<TIER>_DEFAULTS.resources` */
  readonly resources?: Resources;
}

/** The metrics exporter sidecar of a tier that has one. */
export interface ExporterSettings {
  /** The exporter's image, pinned (the version the shipped alerts and dashboards are proven against). @default - the tier's `<TIER>_DEFAULTS.exporterImage` */
  readonly exporterImage?: string;
  /** Requests and limits of the exporter sidecar. @default - the tier's `<TIER>_DEFAULTS.exporterResources` */
  readonly exporterResources?: Resources;
}

/** The volume each pod of a stateful tier claims. */
export interface VolumeSettings {
  /** Each pod's volume: its size, and its class (the cluster's default class when unset). @default - the tier's `<TIER>_DEFAULTS.storage` */
  readonly storage?: StorageProps;
}

/**
 * Checks the top-level fields whose names say what they are: `image` and `*Image` (a pinned
 * image reference), `resources` and `*Resources` (requests within limits), `storage` (a
 * volume size and class). Errors name the field and the value. Other fields are the
 * construct's own to check.
 */
export function checkCommonSettings(settings: object): void {
  for (const [key, value] of Object.entries(settings)) {
    if (value === undefined) continue;
    if (key === 'image' || key.endsWith('Image')) checkImage(key, value as string);
    else if (key === 'resources' || key.endsWith('Resources')) checkResources(key, value as Resources);
    else if (key === 'storage') checkStorage(key, value as StorageProps);
  }
}
