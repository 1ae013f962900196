/**
 * Scoring runs and clutch time, for basketball broadcasts.
 *
 * Outputs (`game/{id}/basketball-runs/...`):
 * - `run`: after every score, the current run: `{side, team, points, against, since_seq, period}`:
 *   `points`-`against` since `since_seq`. The other side's points do not end a run while they
 *   total at most `break_points` (default 2) and trail it (the broadcast's "a 10-2 run").
 * - `clutch`: `{active, margin, period, clock_ms}` each time clutch time starts or ends: the last
 *   `clutch_ms` (default 5:00) of the fourth quarter or overtime with the margin at most
 *   `clutch_margin` (default 5), the NBA's definition.
 *
 * Triggers: `run` when a run reaches `run_points` (default 8) with at most `break_points`
 * against, once per run; `clutch` when clutch time starts.
 */
import { definePlugin, type Ctx, type Event } from '@opensports/plugin';

interface Config {
  run_points?: number;
  break_points?: number;
  clutch_ms?: number;
  clutch_margin?: number;
}

type Side = 'home' | 'away';

interface State {
  score: Record<Side, number>;
  teams: Record<Side, string>;
  period: number;
  run: { side: Side; points: number; against: number; since_seq: number; fired: boolean } | null;
  clutch: boolean;
}

class Runs {
  state: State = { score: { home: 0, away: 0 }, teams: { home: 'home', away: 'away' }, period: 0, run: null, clutch: false };
  private readonly runPoints: number;
  private readonly breakPoints: number;
  private readonly clutchMs: number;
  private readonly clutchMargin: number;

  constructor(config: Config) {
    this.runPoints = config.run_points ?? 8;
    this.breakPoints = config.break_points ?? 2;
    this.clutchMs = config.clutch_ms ?? 300_000;
    this.clutchMargin = config.clutch_margin ?? 5;
  }

  onEvent(ctx: Ctx, e: Event): void {
    if (e.sport !== 'basketball') return;
    const st = this.state;
    switch (e.type) {
      case 'game_start':
        st.teams = { home: e.home, away: e.away };
        return;
      case 'period_start':
        st.period = e.period;
        break;
      case 'shot':
        if (e.made) this.scored(ctx, e.side, e.points, e.seq);
        break;
      case 'free_throw':
        if (e.made) this.scored(ctx, e.side, 1, e.seq);
        break;
      case 'score_correction':
        st.score = { home: e.home, away: e.away };
        st.run = null;
        break;
      default:
        break;
    }
    this.checkClutch(ctx, e.clock_ms ?? null);
  }

  private scored(ctx: Ctx, side: Side, points: number, seq: number): void {
    const st = this.state;
    st.score[side] += points;
    let run = st.run;
    if (run && run.side === side) {
      run.points += points;
    } else if (run && run.against + points <= this.breakPoints && run.points > run.against + points) {
      // The other side's basket does not end a run it is far behind in: "a 10-2 run".
      run.against += points;
    } else {
      run = st.run = { side, points, against: 0, since_seq: seq, fired: false };
    }
    ctx.emit('run', {
      side: run.side,
      team: st.teams[run.side],
      points: run.points,
      against: run.against,
      since_seq: run.since_seq,
      period: st.period,
    });
    if (!run.fired && run.points >= this.runPoints) {
      run.fired = true;
      const text = `${st.teams[run.side]} on a ${run.points}-${run.against} run`;
      ctx.trigger('run', text, { side: run.side, team: st.teams[run.side], points: run.points, against: run.against, since_seq: run.since_seq });
    }
  }

  private checkClutch(ctx: Ctx, clockMs: number | null): void {
    const st = this.state;
    if (clockMs === null) return;
    const margin = Math.abs(st.score.home - st.score.away);
    const active = st.period >= 4 && clockMs <= this.clutchMs && margin <= this.clutchMargin;
    if (active === st.clutch) return;
    st.clutch = active;
    ctx.emit('clutch', { active, margin, period: st.period, clock_ms: clockMs });
    if (active) {
      ctx.trigger('clutch', `Clutch time: ${margin === 0 ? 'tied' : `a ${margin}-point game`} in the final ${Math.ceil(clockMs / 60000)} minutes`, {
        margin,
        period: st.period,
        clock_ms: clockMs,
      });
    }
  }

  snapshot(): unknown {
    return this.state;
  }

  restore(state: unknown): void {
    this.state = state as State;
  }
}

export default definePlugin<Config>({ sports: ['basketball'], create: (config) => new Runs(config) });
