/** Narrows a server message to a publication. */
export function isPublication(m) {
    return m.op === 'msg' || m.op === 'snapshot';
}
/** One text frame: a single message or a batch (a JSON array of messages). */
export function parseFrame(text) {
    const v = JSON.parse(text);
    return (Array.isArray(v) ? v : [v]);
}
/** Whether a concrete topic matches a pattern (`+` one level, `#` the rest). */
export function matches(pattern, topic) {
    const p = pattern.split('/');
    const t = topic.split('/');
    for (let i = 0; i < p.length; i++) {
        if (p[i] === '#')
            return true;
        if (i >= t.length || (p[i] !== '+' && p[i] !== t[i]))
            return false;
    }
    return p.length === t.length;
}
/** A refused op (PROTOCOL.md §2.4) or a failed connection. */
export class OpenSportsError extends Error {
    code;
    id;
    constructor(code, message, id) {
        super(`${code}: ${message}`);
        this.code = code;
        this.id = id;
        this.name = 'OpenSportsError';
    }
}
