/** Names of tfjs variables: tfjs keeps one global registry, and refuses a name twice. */
import { tf } from "../backend/index";

/**
 * A variable-name prefix not used by any live tfjs variable: `name` itself, or `name_2`,
 * `name_3`, ... (tfjs refuses to register two variables under one name).
 */
export function freeVariablePrefix(name: string): string {
  const taken = Object.keys(tf.engine().registeredVariables);
  const used = (prefix: string): boolean => taken.some((k) => k.startsWith(`${prefix}/`));
  if (!used(name)) return name;
  for (let i = 2; ; i++) if (!used(`${name}_${i}`)) return `${name}_${i}`;
}
