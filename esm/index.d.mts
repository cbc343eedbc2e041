export * from '../dist/index.js'
import * as shmq from '../dist/index.js'
export default shmq
