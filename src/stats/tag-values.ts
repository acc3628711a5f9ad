/**
 * What a recording's Telemetry tag overrides evaluate to. One set of inputs (the attribute scope and a value per
 * expression position) is reused request after request: plain attribute paths are read straight from the request
 * (attribute-readers.ts), the rest evaluate against the scope, which is reset only when an expression needs it
 * and builds each top-level attribute once (issue 12.3: no scope, map or values array allocated per request).
 */
import type { WorkloadMetadata } from '../metadata/types.js';
import type { ConnectionAttributes, HttpStreamAttributes, Reporter } from './types.js';
import { AttributeScope } from './attributes.js';
import type { CompiledExpression } from './expression.js';
import type { LabelLimits } from './label-limits.js';
import type { ModeState, StatsPlan } from './stats-plan.js';

/** What one recording evaluates expressions with: the attribute scope and the values, reused per request. */
export interface TagInputs {
  busy: boolean;
  /** Pointed at the recording's request or connection on first use (`ready`). */
  readonly scope: AttributeScope;
  ready: boolean;
  c: ConnectionAttributes | undefined;
  a: HttpStreamAttributes | undefined;
  reporter: Reporter;
  /** Values of the mode's expressions, by position in `ModeState.exprIds`, capped (after {@link TagValues.evaluate}). */
  readonly vals: string[];
}

/** The tag-override evaluation of one recorder. */
export class TagValues {
  private readonly local: WorkloadMetadata;
  private readonly exprs: readonly CompiledExpression[];
  private readonly exprLabels: readonly string[];
  private readonly limits: LabelLimits;
  private readonly inputs: TagInputs;

  constructor(local: WorkloadMetadata, plan: StatsPlan, limits: LabelLimits) {
    this.local = local;
    this.exprs = plan.exprs;
    this.exprLabels = plan.exprLabels;
    this.limits = limits;
    this.inputs = this.newInputs();
  }

  private newInputs(): TagInputs {
    return { busy: false, scope: new AttributeScope(this.local), ready: false, c: undefined, a: undefined, reporter: 'source', vals: [] };
  }

  /**
   * The scope and value slots for one recording, pointed at its request or connection. One set is reused; a
   * recording started while it is in use (a header getter that records) gets its own.
   */
  acquire(c: ConnectionAttributes, a: HttpStreamAttributes | undefined, reporter: Reporter): TagInputs {
    const inputs = this.inputs.busy ? this.newInputs() : this.inputs;
    inputs.busy = true;
    inputs.ready = false;
    inputs.c = c;
    inputs.a = a;
    inputs.reporter = reporter;
    return inputs;
  }

  /** The attribute scope of the recording, reset for it on first use (direct reads need none). */
  scopeOf(inputs: TagInputs): AttributeScope {
    if (!inputs.ready) {
      inputs.scope.reset(inputs.c, inputs.a, inputs.reporter);
      inputs.ready = true;
    }
    return inputs.scope;
  }

  release(inputs: TagInputs): void {
    // The reused inputs must not keep the request alive.
    if (inputs.ready) inputs.scope.release();
    inputs.c = undefined;
    inputs.a = undefined;
    inputs.busy = false;
  }

  /**
   * Evaluate the mode's expressions into `inputs.vals` (by position in `mode.exprIds`), capped: a direct reader
   * where the path has one, else the compiled expression against the scope.
   */
  evaluate(mode: ModeState, inputs: TagInputs): void {
    const ids = mode.exprIds;
    // Filled by the direct reads with a value or undefined (evaluate), then with every value.
    const out = inputs.vals as (string | undefined)[];
    if (mode.direct.any) mode.direct.read(inputs.a, out);
    else for (let t = 0; t < ids.length; t++) out[t] = undefined;
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t] as number;
      let v = out[t];
      if (v === undefined) v = (this.exprs[id] as CompiledExpression).evaluate(this.scopeOf(inputs));
      out[t] = this.limits.capValue(v, this.exprLabels[id] ?? '');
    }
  }

  /**
   * The expression values by expression id (`unknown` for ids the mode does not use) from `vals` by position in
   * `mode.exprIds`, for rendering a group.
   */
  byId(mode: ModeState, vals: readonly string[] | undefined): string[] {
    const out = new Array<string>(this.exprs.length).fill('unknown');
    if (vals === undefined) return out;
    for (let t = 0; t < mode.exprIds.length; t++) out[mode.exprIds[t] as number] = vals[t] as string;
    return out;
  }
}
