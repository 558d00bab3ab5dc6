import { start } from './entry.ts';

start(() => import('./cli/main.ts'));
