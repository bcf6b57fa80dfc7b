/** Persistent storage of the stateful tiers. */
import { k8s } from 'cdk8s-plus-28';
import { selectorLabels } from './labels';
import { quantityProblem } from './quantity';
import { checkName, fail } from './validate';

/** The volume each pod of a stateful tier claims. */
export interface StorageProps {
  /** Size of each PersistentVolumeClaim (a Kubernetes quantity, e.g. `10Gi`). */
  readonly size: string;
  /** StorageClass of the claims. @default - the cluster's default class */
  readonly storageClass?: string;
}

/** Throws when a storage prop is malformed. */
export function checkStorage(prop: string, storage: StorageProps): void {
  const problem = quantityProblem(storage.size);
  if (problem) fail(`${prop}.size`, storage.size, problem);
  if (storage.storageClass !== undefined) checkName(`${prop}.storageClass`, storage.storageClass);
}

/**
 * The `data` volume claim template of a StatefulSet: ReadWriteOnce, the size
 * asked for, and the StorageClass asked for (none: the cluster's default class).
 * The name `data` is part of every PVC's name: renaming it replaces the data.
 */
export function dataVolumeClaim(component: string, storage: StorageProps): k8s.KubePersistentVolumeClaimProps {
  return {
    metadata: { name: 'data', labels: selectorLabels(component) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      ...(storage.storageClass ? { storageClassName: storage.storageClass } : {}),
      resources: { requests: { storage: k8s.Quantity.fromString(storage.size) } },
    },
  };
}
