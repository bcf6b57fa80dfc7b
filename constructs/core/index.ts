/**
 * The construct kit: the pod, network, storage, quantity and validation helpers every
 * construct in this library is built from. Constructs import it whole
 * (`import * as core from '../core'`), the way cdk8s code imports its libraries whole.
 */
export * from './cron';
export * from './generated-secret';
export * from './labels';
export * from './network';
export * from './pod';
export * from './quantity';
export * from './settings';
export * from './storage';
export * from './validate';
export * from './workload';
