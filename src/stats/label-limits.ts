/**
 * Which label values are cut or refused: the length cap (`maxLabelValueLength`, cut values counted in
 * `meshtel_label_value_truncated_total{label}`) and the per-label allow-lists (refused values become `overflow`,
 * counted in `meshtel_label_value_rejected_total{label}`). Applied when a peer context or label group is built,
 * and to tag-override values as they are evaluated.
 */
import { truncateLabelValue } from './series-budget.js';

/** The label value bounds of one recorder and what they cut or refused, by label name. */
export class LabelLimits {
  private readonly maxLength: number;
  private readonly allow: Map<string, Set<string>> | undefined;
  /** Values cut to the length cap, by label name. */
  readonly truncated = new Map<string, number>();
  /** Values the allow-list refused, by label name. */
  readonly rejected = new Map<string, number>();

  constructor(maxLength: number, allowList: Readonly<Record<string, readonly string[]>> | undefined) {
    this.maxLength = maxLength;
    if (allowList !== undefined) {
      this.allow = new Map(Object.entries(allowList).map(([label, values]) => [label, new Set(values)]));
    }
  }

  /** A label value within the length cap; a cut value is counted under its label name. */
  capValue(v: string, label: string): string {
    if (v.length <= this.maxLength) return v;
    this.truncated.set(label, (this.truncated.get(label) ?? 0) + 1);
    return truncateLabelValue(v, this.maxLength);
  }

  /** The value, or `overflow` (counted) when the label has an allow-list that does not hold it. */
  allowed(label: string, v: string): string {
    if (this.allow === undefined) return v;
    const allowed = this.allow.get(label);
    if (allowed === undefined || allowed.has(v)) return v;
    this.rejected.set(label, (this.rejected.get(label) ?? 0) + 1);
    return 'overflow';
  }
}
