/**
 * The settings every tier shares by name, validated in one place: each construct calls
 * `checkCommonSettings` on its resolved settings instead of one check per field.
 */
import { checkResources, type Resources } from './quantity';
import { checkStorage, type StorageProps } from './storage';
import { checkImage } from './validate';

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
